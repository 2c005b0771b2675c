"""The aiohttp adapter: HTTP requests in, kernel-layer calls, HTTP answers out."""
