"""The conformance runner: play declarative scenarios against any ISO 18626 endpoint.

scenario.py loads and checks scenario files (fixtures/conformance/README.md), build.py turns steps
into messages, listener.py receives the target's follow-ups, runner.py plays and judges,
report.py renders the results (table, JUnit XML, JSON), cli.py is `gateway conformance`.
"""
