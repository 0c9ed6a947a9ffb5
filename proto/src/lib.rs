//! Generated gRPC types for the Switchyard contract. These are wire types only: the domain model
//! they decode into, and its validation, live in `switchyard-policy`, which both planes use.

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
