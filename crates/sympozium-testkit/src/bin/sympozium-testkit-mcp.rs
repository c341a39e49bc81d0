//! `sympozium-testkit-mcp`: the test notes server over stdio (rmcp), for MCPServer pods of
//! `transportType: stdio` on the local node. `NOTES_OWNER` signs the notes.

use rmcp::ServiceExt;
use sympozium_testkit::mcp::Notes;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let owner = std::env::var("NOTES_OWNER").unwrap_or_else(|_| "nobody".into());
    let running = Notes::new(&owner).serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
