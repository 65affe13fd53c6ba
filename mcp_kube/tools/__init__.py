"""Tool adapters: typed inputs and outputs over the cluster port; no API clients here."""
