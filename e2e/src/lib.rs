//! End-to-end tests of Switchyard live in `tests/`: each starts real processes (mock providers,
//! control plane, dataplane) on free ports and talks to them over sockets. `tests/support` is
//! the harness.
