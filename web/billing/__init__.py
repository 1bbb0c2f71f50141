"""Plans and billing: billing accounts, plan rules and limits, branding, free Supporter
requests and federations (the Stripe side lives in stripe_*.py)."""
