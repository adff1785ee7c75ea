//! One adapter per upstream. Each keeps its wire types private and maps them to the domain in
//! one place; each has one error enum grouped by what the caller does next.

pub mod calls;
pub mod graph;
pub mod http;
pub mod logs;
pub mod sentinel;
pub mod table;
pub mod unified;
