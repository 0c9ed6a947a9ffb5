//! Load generation and mock providers for Switchyard.

pub mod mock;
