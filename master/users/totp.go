package users

import (
	"bytes"
	"image/png"
	"net/url"
	"strconv"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	universe "github.com/universe-orchestrator/universe"
)

// TOTP: RFC 6238 codes of 6 digits every 30 s, one step of clock skew
// either way.
const totpPeriod = 30

// NewTOTP makes a second factor's secret for user (issuer "Universe") and
// its otpauth:// URL (what a QR code carries).
func NewTOTP(user string) (secret, url string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Universe", AccountName: user, Period: totpPeriod})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

// CheckTOTP checks code against secret at now: it returns the time step
// the code belongs to. A code of a step at or before last (one taken
// already) is refused: a code is good once. Errors: EUNAUTHORIZED.
func CheckTOTP(secret, code string, now time.Time, last uint64) (uint64, error) {
	for _, skew := range []int64{0, -1, 1} {
		at := now.Add(time.Duration(skew*totpPeriod) * time.Second)
		ok, err := totp.ValidateCustom(code, secret, at, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && ok {
			step := uint64(at.Unix() / totpPeriod)
			if step <= last {
				return 0, universe.Errorf(universe.EUNAUTHORIZED, "that code was used already: wait for the next one")
			}
			return step, nil
		}
	}
	return 0, universe.Errorf(universe.EUNAUTHORIZED, "wrong code")
}

// TOTPQR is the QR code (PNG) of the enrolment of user with secret, for an
// authenticator app to scan.
func TOTPQR(user, secret string) ([]byte, error) {
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/Universe:" + user,
		RawQuery: url.Values{"secret": {secret}, "issuer": {"Universe"}, "period": {strconv.Itoa(totpPeriod)}, "algorithm": {"SHA1"}, "digits": {"6"}}.Encode()}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		return nil, err
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
