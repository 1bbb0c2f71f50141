"""Delivery of letters to departments and the clock that runs against them."""
