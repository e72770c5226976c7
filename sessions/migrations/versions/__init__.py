"""Schema revisions, oldest first: ``r0001_baseline``, ``r0002_session_records`` …"""
