//! The issuer daemon, its admin CLI and the officer client (DESIGN.md §1). Built in the daemon issue; empty until then.
