//! Whole-system tests against the real binaries and SoftHSM (DESIGN.md §6). Empty until the daemon exists.
