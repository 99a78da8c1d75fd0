//! End-to-end tests: corpus programs run, captured with `rdlv-snap`,
//! analyzed with `rdlv`, and compared with what the programs report.

mod capture;
mod churn;
mod cli;
mod container;
mod corpus;
mod cow;
mod encrypt;
mod export;
mod heap;
mod http;
mod precopy;
mod realserver;
mod redact;
mod robust;
mod session;
mod stacks;
mod values;
