//! The request path, one function per stage over one per-request context, each testable without
//! Pingora (see `docs/request-path.md`):
//!
//! `authenticate → request (parse) → resolve → route → admit → forward → meter → settle`
//!
//! - `authenticate`: the key behind the bearer secret, refused if disabled, expired, of the
//!   wrong kind, or blocked by a quarantined record;
//! - `request`: the body's shallow parse;
//! - `resolve`: the model;
//! - `route`: the endpoints the key's guardrails allow (`guardrails`), and the attempts over
//!   them with whose credential (BYOK);
//! - `admit`: the worst case reserved on every limit that applies, or a refusal;
//! - `forward`: the attempts tried in order until a provider answers;
//! - `meter`: the response priced and rewritten for the client;
//! - `settle`: health, the usage event and the spend settle, for every admitted exchange.
//!
//! `context` is the state they share; the Pingora adapter (`http::chat`) only reads and writes
//! bytes and calls them.

pub mod admit;
pub mod authenticate;
pub mod context;
pub mod forward;
pub mod guardrails;
pub mod meter;
pub mod request;
pub mod resolve;
pub mod route;
pub mod settle;
