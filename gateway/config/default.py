"""The embedded default configuration: loopback, an SQLite file under ./var, two demo partners
(served by `gateway mock-partner`) and a demo staff key."""

DEFAULT_TOML = """
[gateway]
agency = "ISIL:XX-GATEWAY"
listen = "127.0.0.1:8626"
database = "sqlite+aiosqlite:///var/gateway.sqlite3"
public_url = "http://127.0.0.1:8626/iso18626"

[policy]
end_of_rota = "expire"
on_partner_cancel = "next"
response_deadline_hours = 72
grace_hours = 24

[[partners]]
agency = "ISIL:MOCK1"
name = "Demo partner one (mock)"
url = "http://127.0.0.1:8627/iso18626"
version = "2017"
profile = "strict"

[[partners]]
agency = "ISIL:MOCK2"
name = "Demo partner two (mock)"
url = "http://127.0.0.1:8627/iso18626"
version = "2017"
profile = "strict"

[[rota_templates]]
name = "default"
partners = ["ISIL:MOCK1", "ISIL:MOCK2"]

[intake]
pickup_locations = ["Main Library", "Science Library"]

# The staff pages: a demo account "demo" with this password (embedded default only).
[web]
demo_password = "demo-librarian"

# A demo staff key for the embedded default only: set your own keys in a config file.
[[api_keys]]
key = "demo-staff-key"
role = "staff"
name = "demo"
"""
