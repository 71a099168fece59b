"""Thin views: authenticate, look up through a selector, call a service, answer. One module
per subject: files (list, page, download, delete), uploads, shares, links; access holds the
look-ups that answer 404, streaming the verified download."""
