//! The unit's sandbox, scored by systemd itself (DESIGN.md §5: "OK" band).

use std::process::Command;

#[test]
fn unit_exposure_is_at_most_3() {
    let unit = provii_e2e::workspace().join("systemd/provii-appliance.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("an overall exposure line");
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("a numeric exposure");
    println!("{line}");
    assert!(score <= 3.0, "{line}");
}
