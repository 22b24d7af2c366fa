"""The operator's command line, ``mapokezi``: calls, profiles, numbers and the console."""

from local.lambda_path import add_functions_to_path

# The CLI shares the query API's filter validation (functions/calls_api), which, like all
# Lambda code, is not installed as a package of its own.
add_functions_to_path()
