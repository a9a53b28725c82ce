//! Epoch days against the pairs spec Appendix A publishes (A.7, A.8).

use provii_appliance::calendar::{civil_from_days, days_from_civil};
use provii_appliance::officer::{age_in_years, parse_dob};

#[test]
fn spec_dates_of_birth() {
    assert_eq!(days_from_civil(2000, 10, 16), 11246);
    assert_eq!(days_from_civil(2015, 10, 13), 16721);
    assert_eq!(civil_from_days(11246), (2000, 10, 16));
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(parse_dob("2000-10-16").expect("date"), 11246);
    assert!(parse_dob("2001-02-29").is_err());
    assert_eq!(
        i64::from(parse_dob("2000-02-29").expect("leap day")),
        days_from_civil(2000, 2, 29)
    );
    // The day before the 25th birthday, and the birthday itself.
    assert_eq!(age_in_years(11246, days_from_civil(2025, 10, 15)), 24);
    assert_eq!(age_in_years(11246, days_from_civil(2025, 10, 16)), 25);
}
