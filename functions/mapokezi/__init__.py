"""Code shared by the Lambda functions and the media node: keys, storage, profiles, tokens."""
