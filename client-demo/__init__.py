"""The web player and creator view: static files served at ``/``, shipped as package data."""
