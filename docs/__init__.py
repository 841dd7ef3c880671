"""The docs pages, shipped as package data (``crm-bridge adapters show NAME``)."""
