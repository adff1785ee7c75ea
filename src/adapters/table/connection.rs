//! Storage connection settings (`AzureWebJobsStorage` and its identity-based forms).

use crate::config::StorageConfig;

impl StorageConfig {
    /// Parses a storage connection string (`AccountName`/`AccountKey`/`EndpointSuffix`/
    /// `DefaultEndpointsProtocol`, explicit `TableEndpoint`, or `UseDevelopmentStorage=true`).
    /// The error names what is wrong, never the key.
    pub fn parse_connection_string(s: &str) -> Result<StorageConfig, String> {
        let _ = s;
        Err("storage connection strings are not supported yet".into())
    }

    /// The identity-based connection: `AzureWebJobsStorage__tableServiceUri`, else
    /// `https://{AzureWebJobsStorage__accountName}.table.core.windows.net`.
    pub fn identity(account_name: Option<&str>, table_service_uri: Option<&str>) -> Result<StorageConfig, String> {
        let _ = (account_name, table_service_uri);
        Err("identity-based storage connections are not supported yet".into())
    }
}
