//! Azure Table Storage StateStore (owned by the state-store work).
