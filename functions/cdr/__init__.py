"""Call-record (CDR) fetcher: consumes delayed SQS jobs and stores Sautikit's CDR on the call."""
