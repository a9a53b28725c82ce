//! The fixed-base tables against jubjub's own scalar multiplication.

use group::Group;
use jubjub::{ExtendedPoint, Fr, SubgroupPoint};
use provii_circuits::fixed_base::FixedBaseTable;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

#[test]
fn both_multiplications_match_jubjub() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let base = ExtendedPoint::from(SubgroupPoint::generator() * Fr::from_bytes_wide(&wide));
    let table = FixedBaseTable::new(base);
    let mut scalars = vec![
        Fr::zero(),
        Fr::one(),
        -Fr::one(),
        Fr::from(16u64),
        Fr::from(15u64),
    ];
    for _ in 0..32 {
        rng.fill_bytes(&mut wide);
        scalars.push(Fr::from_bytes_wide(&wide));
    }
    for k in scalars {
        let want = base * k;
        assert_eq!(table.mul(&k), want);
        assert_eq!(table.mul_vartime(&k), want);
    }
}
