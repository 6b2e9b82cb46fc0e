"""Services written for the tests, not shipped as samples: proof that a model of a service
nobody tuned the tool for runs in every mode and finds its bugs."""
