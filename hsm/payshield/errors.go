package payshield

import (
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/hsm"
	"github.com/switchyard/switchyard/hsm/pinblock"
	"github.com/switchyard/switchyard/hsm/tr31"
)

// The error codes of payShield answers that this package produces or interprets.
// Codes not listed map to a generic error naming the code.
const (
	CodeOK               = "00"
	CodeVerifyFailed     = "01" // PIN, MAC or CVV verification failure; KCV mismatch on import
	CodeKeyTypeInvalid   = "04" // invalid key type code, or a key used outside its usage
	CodeSourceKeyParity  = "10" // source key parity error (or key block under the LMK does not authenticate)
	CodeDestKeyParity    = "11" // destination key parity error
	CodeInvalidInput     = "15" // invalid input data
	CodePINBlockInvalid  = "20" // the PIN block does not contain valid values
	CodePINFormatInvalid = "23" // invalid PIN block format code
	CodeKeySchemeInvalid = "26" // invalid key scheme
	CodeCommandDisabled  = "68" // command unknown or disabled
	CodeFormatDisabled   = "69" // PIN block format disabled (format policy)
	CodeReplay           = "90" // hsm serve, to G0 and CI: DUKPT counter replay; a payShield: data parity error in the request
	codeInternalError    = "41" // internal hardware/software error

	// Codes a payShield answers that hsm serve does not.
	codeAccountInvalid    = "22" // invalid account number
	codePINLength         = "24" // PIN is fewer than 4 or more than 12 digits
	codeInvalidKeyType    = "28" // invalid key type
	codeKeyFunction       = "29" // key function not permitted
	codeKeyBlockFormat    = "83" // key block format error
	codeKeyBlockCheck     = "84" // key block check value error
	codeKeyBlockAuth      = "A4" // key block authentication failure
	codeKeyBlockUsage     = "A6" // invalid key usage
	codeKeyBlockAlg       = "A7" // invalid algorithm
	codeKeyBlockModeOfUse = "A8" // invalid mode of use
	codeMasquerading      = "75" // single length key masquerading as double or triple length key
)

// errScheme is a key token of a scheme the HSM does not hold an LMK for.
var errScheme = errors.New("invalid key scheme")

// Error is a non-zero error code in an HSM's answer. It wraps the hsm error the code
// means (hsm.ErrMACMismatch for 01 to M8, ...) so that callers test with errors.Is.
type Error struct {
	Command string // the request's command code
	Code    string // the 2-digit error code
	wrapped error
}

func (e *Error) Error() string {
	if e.wrapped != nil {
		return fmt.Sprintf("HSM answered %s with error %s (%s): %v", e.Command, e.Code, codeText(e.Code), e.wrapped)
	}
	return fmt.Sprintf("HSM answered %s with error %s (%s)", e.Command, e.Code, codeText(e.Code))
}

// Unwrap returns the hsm error the code means, if any.
func (e *Error) Unwrap() error { return e.wrapped }

func codeText(code string) string {
	switch code {
	case CodeVerifyFailed:
		return "verification failure"
	case CodeKeyTypeInvalid:
		return "invalid key type or usage"
	case CodeSourceKeyParity:
		return "source key parity error"
	case CodeDestKeyParity:
		return "destination key parity error"
	case CodeInvalidInput:
		return "invalid input data"
	case CodePINBlockInvalid:
		return "PIN block does not contain valid values"
	case CodePINFormatInvalid:
		return "invalid PIN block format code"
	case CodeKeySchemeInvalid:
		return "invalid key scheme"
	case CodeCommandDisabled:
		return "command unknown or disabled"
	case CodeFormatDisabled:
		return "PIN block format disabled"
	case CodeReplay:
		return "DUKPT counter replay (hsm serve, to G0 or CI) or data parity error in the request (payShield)"
	case codeAccountInvalid:
		return "invalid account number"
	case codePINLength:
		return "PIN is fewer than 4 or more than 12 digits"
	case codeInvalidKeyType:
		return "invalid key type"
	case codeKeyFunction:
		return "key function not permitted"
	case codeKeyBlockFormat:
		return "key block format error"
	case codeKeyBlockCheck:
		return "key block check value error"
	case codeKeyBlockAuth:
		return "key block authentication failure"
	case codeKeyBlockUsage:
		return "invalid key usage"
	case codeKeyBlockAlg:
		return "invalid algorithm"
	case codeKeyBlockModeOfUse:
		return "invalid mode of use"
	case codeMasquerading:
		return "single length key masquerading as double or triple length key"
	case codeInternalError:
		return "internal error"
	}
	return "unknown error code"
}

// errorFor maps an answer's error code to an error wrapping the matching hsm error.
// A payShield with a key-block LMK reports a key used outside its usage with A6, A7,
// A8, 28 or 29 rather than 04, and a token that does not authenticate with A4 (83,
// 84: a damaged one) rather than 10; a PIN of the wrong length with 24 rather than
// 20. Until 6 December 2026 those codes wrapped nothing (a PIN of 3 digits was
// declined 63 through a payShield, 55 through the software HSM), and 90, a
// payShield's "data parity error in the request message" to any command, was taken
// for hsm serve's DUKPT replay (63 dukpt-replay for a corrupted M6 or CA).
func errorFor(cmd, code string) error {
	e := &Error{Command: cmd, Code: code}
	switch code {
	case CodeVerifyFailed:
		switch cmd {
		case "M8":
			e.wrapped = hsm.ErrMACMismatch
		case "CY":
			e.wrapped = hsm.ErrCVVMismatch
		case "A6":
			e.wrapped = hsm.ErrKCVMismatch
		default:
			e.wrapped = hsm.ErrPINMismatch
		}
	case CodeKeyTypeInvalid:
		e.wrapped = hsm.ErrKeyUsage
	case codeInvalidKeyType, codeKeyFunction, codeKeyBlockUsage, codeKeyBlockAlg, codeKeyBlockModeOfUse:
		e.wrapped = hsm.ErrKeyUsage
	case CodeInvalidInput, CodePINBlockInvalid, CodePINFormatInvalid, codeAccountInvalid, codePINLength, codeMasquerading:
		e.wrapped = hsm.ErrInput
	case codeKeyBlockAuth, codeKeyBlockFormat, codeKeyBlockCheck:
		e.wrapped = hsm.ErrKeyNotUsable
	case CodeSourceKeyParity, CodeDestKeyParity, CodeKeySchemeInvalid:
		// A stored key the HSM cannot use (another LMK, an altered token) is the
		// switch's fault, not the cardholder's: not ErrInput, which declines 55.
		e.wrapped = hsm.ErrKeyNotUsable
	case CodeFormatDisabled:
		e.wrapped = hsm.ErrPolicy
	case CodeReplay:
		// Only hsm serve's DUKPT PIN translations answer a replay so; to any
		// other command, and from a payShield, 90 is a request that arrived
		// damaged: nothing was done.
		if cmd == "G0" || cmd == "CI" {
			e.wrapped = hsm.ErrReplay
		}
	}
	return e
}

// codeFor maps an error of the software HSM to the error code the server answers.
// dest says the error concerns the command's destination key (11 rather than 10).
func codeFor(err error) string {
	switch {
	case err == nil:
		return CodeOK
	case errors.Is(err, hsm.ErrMACMismatch), errors.Is(err, hsm.ErrCVVMismatch), errors.Is(err, hsm.ErrPINMismatch), errors.Is(err, hsm.ErrKCVMismatch):
		return CodeVerifyFailed
	case errors.Is(err, errScheme):
		return CodeKeySchemeInvalid
	case errors.Is(err, tr31.ErrMAC):
		return CodeSourceKeyParity
	case errors.Is(err, hsm.ErrKeyUsage):
		return CodeKeyTypeInvalid
	case errors.Is(err, hsm.ErrPolicy):
		return CodeFormatDisabled
	case errors.Is(err, hsm.ErrReplay):
		return CodeReplay
	case errors.Is(err, pinblock.ErrControl), errors.Is(err, pinblock.ErrFill), errors.Is(err, pinblock.ErrPINLength), errors.Is(err, pinblock.ErrPINDigits):
		return CodePINBlockInvalid
	case errors.Is(err, hsm.ErrInput), errors.Is(err, ErrFrame), errors.Is(err, pinblock.ErrPAN), errors.Is(err, pinblock.ErrBlockSize), errors.Is(err, pinblock.ErrFormat):
		return CodeInvalidInput
	}
	return codeInternalError
}
