"""What a team shares: artifact stores (`artifacts`: a folder, `s3store`: S3 and compatible
services) and the claims that make a shot paid for once by the whole team (`claims`)."""
