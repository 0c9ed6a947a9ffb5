//! The request path, one plain function per stage, each testable without Pingora:
//!
//! `authenticate → resolve → admit → route → forward → meter → settle`
//!
//! `admit` (guardrails, spend reservation) and `route` (health-aware choice) are thin today:
//! admission is authentication's verdict, and routing walks a model's endpoints in priority
//! order. Both keep their place in the chain so that later work slots in without reshaping it.

pub mod admit;
pub mod authenticate;
pub mod forward;
pub mod guardrails;
pub mod meter;
pub mod request;
pub mod resolve;
pub mod route;
pub mod settle;
