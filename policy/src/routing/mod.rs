//! What routing reads, for both planes: the `provider` preferences of a request, preset or
//! workspace ([`preferences`]); which request members are parameters an endpoint must honour and
//! which never leave the gateway ([`parameters`]); and provider health ([`health`]).

pub mod health;
pub mod parameters;
pub mod preferences;

pub use health::{EndpointHealth, Histogram, Percentiles};
pub use preferences::{Cutoffs, DataCollection, MaxPrice, ProviderPreferences, Sort, SortBy};
