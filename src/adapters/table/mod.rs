//! Azure Table Storage client (owned by the state-store work).

mod connection;
