"""hwsim package."""
