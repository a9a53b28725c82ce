//! PKCS#11 custody for the Provii issuer appliance (DESIGN.md §3). Built in the HSM issue; empty until then.
