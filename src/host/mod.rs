//! The Azure Functions custom-handler protocol: the only code that knows the host.
