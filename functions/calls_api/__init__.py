"""Calls query API: GET /calls and GET /calls/{call_id} (IAM-authorised)."""
