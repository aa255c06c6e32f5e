"""
The web console: pages for tenants' admins and viewers and for operators.
"""
