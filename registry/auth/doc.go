// Package auth owns berth-registry's accounts (bcrypt-hashed users), the
// access policy (users own NAME/*, repositories private unless public) and the
// ES256-signed bearer tokens of Docker's token protocol.
package auth
