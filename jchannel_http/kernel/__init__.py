"""The kernel side in asyncio: the link to the page, calls, byte streams and channels."""
