"""A simulated oVirt hosted-engine cluster, reached over real SSH and HTTPS.

It plays the outside world for HE Portal and must never import the portal.
"""
