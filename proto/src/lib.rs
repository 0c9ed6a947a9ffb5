//! Generated gRPC types for the Switchyard contract. These are wire types only: each side
//! converts them into its own domain model (`TryFrom`) and validates them there. `spend` names
//! the spend counters both planes touch.

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("switchyard.admin.v1");
    }
}

pub mod config {
    pub mod v1 {
        tonic::include_proto!("switchyard.config.v1");
    }
}

pub mod usage {
    pub mod v1 {
        tonic::include_proto!("switchyard.usage.v1");
    }
}

pub mod spend;
