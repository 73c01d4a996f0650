"""The state service: labelled objects with resource versions, selectors, watches."""
