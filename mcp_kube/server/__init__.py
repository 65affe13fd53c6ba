"""The MCP server: app factory, lifespan and transports."""
