"""`make demo`: Flagstaff with a fake Anthropic API and simulated traffic, no key needed.

- `fake_anthropic/`: the fake Anthropic API (a real HTTP server on loopback, driven by the real
  SDK through `base_url`); the tests import it from here, the demo runs it. It knows nothing of
  Flagstaff (an import-linter contract).
- `scenario.py`: the scripted world: the flag's three versions (a baseline, a candidate whose
  answers to long questions are cut short, a healthy candidate on a cheaper model), the answers
  the fake gives, the live scorer that judges them, and the compressed rollout plans.
- `traffic.py`: the traffic simulator: users of a service calling Claude through the
  `flagstaff` client, whose telemetry and samples reach the control plane as a service's would.
- `seed.py`: the demo's data, written through the services (audited like any other write).
- `__main__.py`: `python -m demo`, what `make demo` runs: the fake server, `manage.py serve`,
  the seed, the rollouts and the simulator; it reports every decision and stops everything on
  Ctrl-C.
"""
