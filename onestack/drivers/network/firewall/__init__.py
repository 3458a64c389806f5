"""The firewall drivers: security groups per port (``base.py``, ``fake.py``, ``noop.py``;
the Linux one comes with the datapath issue)."""
