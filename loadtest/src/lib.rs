//! Load generation and mock providers for Switchyard.

pub mod load;
pub mod mock;
pub mod report;
