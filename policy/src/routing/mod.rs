//! What routing reads, for both planes: the `provider` preferences of a request, preset or
//! workspace ([`preferences`]); which request members are parameters an endpoint must honour and
//! which never leave the gateway ([`parameters`]); provider health ([`health`]); and provider
//! accounts' own limits ([`quota`]).

pub mod health;
pub mod parameters;
pub mod preferences;
pub mod quota;

pub use health::{EndpointHealth, Histogram, Percentiles};
pub use preferences::{Cutoffs, DataCollection, MaxPrice, ProviderPreferences, Sort, SortBy};
pub use quota::{Account, Quota};
