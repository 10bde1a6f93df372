package upstreamsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// reply is a canned error answer.
type reply struct {
	status int
	body   string
	header map[string]string
}

// q JSON-quotes s (for model names and key tails inside bodies).
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func keyTail(key string) string {
	if len(key) <= 4 {
		return "****"
	}
	return "****" + key[len(key)-4:]
}

// documentedAnswers are one provider's canned answers to an unknown or invalid key
// (KEYTAIL stands for the key's masked tail) and to an account without balance.
type documentedAnswers struct{ unauthorized, noQuota reply }

// documented holds the providers' documented answers; "" is the OpenAI-style answer of
// every other provider (and of a provider that documents only one of the two).
var documented = map[string]documentedAnswers{
	"deepseek": {
		unauthorized: reply{401, `{"error":{"message":"Authentication Fails, Your api key: KEYTAIL is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}`, nil},
		noQuota:      reply{402, `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`, nil},
	},
	"kimi": {
		unauthorized: reply{401, `{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}`, nil},
		noQuota:      reply{429, `{"error":{"message":"Your account sim is suspended due to insufficient balance, please recharge your account or check your plan and billing details","type":"exceeded_current_quota_error"}}`, nil},
	},
	"kimi_coding": {
		unauthorized: reply{401, `{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}`, nil},
		noQuota:      reply{403, `{"error":{"message":"You've reached your usage limit for this billing cycle.","type":"access_terminated_error"}}`, nil},
	},
	"minimax": {
		unauthorized: reply{401, `{"type":"error","error":{"type":"authorized_error","message":"login fail: Please carry the API secret key in the 'Authorization' field of the request header (1004)","http_code":"401"},"request_id":"sim-req"}`, nil},
		noQuota:      reply{402, `{"type":"error","error":{"type":"insufficient_balance_error","message":"insufficient balance (1008)","http_code":"402"},"request_id":"sim-req"}`, nil},
	},
	"glm": {
		unauthorized: reply{401, `{"error":{"code":"1002","message":"Authorization Token is invalid, please confirm the Authorization Token is passed correctly."}}`, nil},
		noQuota:      reply{429, `{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please recharge."}}`, nil},
	},
	"qwen": {
		unauthorized: reply{401, `{"error":{"message":"Incorrect API key provided. ","type":"invalid_request_error","param":null,"code":"invalid_api_key"},"request_id":"sim-req"}`, nil},
		noQuota:      reply{400, `{"error":{"message":"Access denied, please make sure your account is in good standing.","type":"Arrearage","param":null,"code":"Arrearage"},"request_id":"sim-req"}`, nil},
	},
	"stepfun": {
		unauthorized: reply{401, `{"error":{"message":"Incorrect API key provided","type":"invalid_api_key"}}`, nil},
		noQuota:      reply{402, `{"error":{"message":"insufficient balance","type":"insufficient_balance"}}`, nil},
	},
	"ark": {
		unauthorized: reply{401, `{"error":{"code":"AuthenticationError","message":"The API key or AK/SK in the request is missing or invalid. Request ID: sim-req","param":"","type":"Unauthorized"}}`, nil},
		noQuota:      reply{403, `{"error":{"code":"AccountOverdueError","message":"The request failed because your account has an overdue balance. Request ID: sim-req","param":"","type":"Forbidden"}}`, nil},
	},
	"qianfan": {
		unauthorized: reply{401, `{"error":{"code":"invalid_iam_token","message":"IAM Certification failed","type":"invalid_request_error"}}`, nil},
	},
	"tokenhub": {
		unauthorized: reply{401, `{"error":{"type":"authentication_error","code":"401002","message":"invalid api key","source":"gateway","request_id":"sim-req"}}`, nil},
		noQuota:      reply{402, `{"error":{"type":"permission_error","code":"401007","message":"endpoint is inactive: FREE_QUOTA_EXHAUSTED","source":"gateway","request_id":"sim-req"}}`, nil},
	},
	"siliconflow": {
		unauthorized: reply{401, `{"code":30014,"data":null,"message":"Token is invalid."}`, map[string]string{"Www-Authenticate": `Bearer realm="siliconflow"`}},
		noQuota:      reply{403, `{"code":30011,"data":null,"message":"The selected model requires paid balance. Your paid balance is insufficient. Please top up and try again."}`, nil},
	},
	"openrouter": {
		unauthorized: reply{401, `{"error":{"message":"No auth credentials found","code":401}}`, nil},
		noQuota:      reply{402, `{"error":{"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits","code":402}}`, nil},
	},
	"": {
		unauthorized: reply{401, `{"error":{"message":"Incorrect API key provided: KEYTAIL.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, nil},
		noQuota:      reply{429, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`, nil},
	},
}

// unauthorized is the provider's documented answer to an unknown or invalid key.
func unauthorized(provider, key string) reply {
	r := answerOf(provider, func(a documentedAnswers) reply { return a.unauthorized })
	r.body = strings.ReplaceAll(r.body, "KEYTAIL", keyTail(key))
	return r
}

// noQuota is the provider's answer when the account has no balance.
func noQuota(provider string) reply {
	return answerOf(provider, func(a documentedAnswers) reply { return a.noQuota })
}

// answerOf picks one of the provider's documented answers, or the default one.
func answerOf(provider string, pick func(documentedAnswers) reply) reply {
	if a, ok := documented[provider]; ok && pick(a).status != 0 {
		return pick(a)
	}
	return pick(documented[""])
}

// rateLimited is the provider's concurrency/RPM answer, always with Retry-After.
func rateLimited(provider string) reply {
	h := map[string]string{"Retry-After": strconv.Itoa(RetryAfterSeconds)}
	switch provider {
	case "kimi":
		return reply{429, `{"error":{"message":"Your account sim request reached organization max RPM: 3, please try again after 1 seconds","type":"rate_limit_reached_error"}}`, h}
	case "minimax":
		return reply{429, `{"type":"error","error":{"type":"rate_limit_error","message":"rate limit exceeded (1002)","http_code":"429"},"request_id":"sim-req"}`, h}
	case "glm":
		return reply{429, `{"error":{"code":"1302","message":"Rate limit reached for requests"}}`, h}
	case "qwen":
		return reply{429, `{"error":{"message":"Requests rate limit exceeded, please try again later.","type":"Throttling.RateQuota","param":null,"code":"Throttling.RateQuota"},"request_id":"sim-req"}`, h}
	case "tokenhub":
		return reply{429, `{"error":{"type":"rate_limit_error","code":"429001","message":"rate limit exceeded on dimension: rpm","source":"gateway","request_id":"sim-req"}}`, h}
	case "siliconflow":
		return reply{429, `{"code":50603,"data":null,"message":"Request was rejected due to rate limiting. Details: RPM limit reached."}`, h}
	}
	return reply{429, `{"error":{"message":"Rate limit reached for requests","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`, h}
}

// banned is an account-suspended answer (few providers document one; this is the common
// OpenAI-style shape).
func banned(provider string) reply {
	if provider == "siliconflow" {
		return reply{403, `{"code":30001,"data":null,"message":"Your account has been banned."}`, nil}
	}
	return reply{403, `{"error":{"message":"Your account has been suspended for violating the usage policy.","type":"access_terminated","param":null,"code":"account_deactivated"}}`, nil}
}

// modelNotFound is the provider's unknown-model answer.
func modelNotFound(provider, model string) reply {
	switch provider {
	case "deepseek":
		return reply{400, `{"error":{"message":"Model Not Exist","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}`, nil}
	case "kimi", "kimi_coding":
		return reply{404, fmt.Sprintf(`{"error":{"message":"Not found the model %s or Permission denied","type":"resource_not_found_error"}}`, jsonInner(model)), nil}
	case "minimax":
		return reply{400, fmt.Sprintf(`{"type":"error","error":{"type":"bad_request_error","message":"invalid params, unknown model '%s' (2013)","http_code":"400"},"request_id":"sim-req"}`, jsonInner(model)), nil}
	case "glm":
		return reply{400, `{"error":{"code":"1211","message":"Unknown Model, please check the model code."}}`, nil}
	case "qwen":
		return reply{404, fmt.Sprintf(`{"error":{"message":"The model %s does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"},"request_id":"sim-req"}`, jsonInner(model)), nil}
	case "ark":
		return reply{404, fmt.Sprintf(`{"error":{"code":"InvalidEndpointOrModel.NotFound","message":"The model or endpoint %s does not exist or you do not have access to it. Request ID: sim-req","param":"","type":"NotFound"}}`, jsonInner(model)), nil}
	case "tokenhub":
		return reply{400, fmt.Sprintf(`{"error":{"type":"invalid_request_error","code":"400002","message":"invalid parameter 'model': model %s not found","source":"gateway","request_id":"sim-req"}}`, jsonInner(model)), nil}
	case "siliconflow":
		return reply{400, `{"code":20012,"data":null,"message":"Model does not exist. Please check it carefully."}`, nil}
	case "openrouter":
		return reply{400, fmt.Sprintf(`{"error":{"message":"%s is not a valid model ID","code":400}}`, jsonInner(model)), nil}
	}
	return reply{404, fmt.Sprintf(`{"error":{"message":"The model %s does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}`, jsonInner(model)), nil}
}

// errorIn200 is an HTTP 200 whose body is an error: MiniMax's base_resp, the provider's
// no-balance body elsewhere (what some relays and legacy endpoints do).
func errorIn200(provider string) reply {
	if provider == "minimax" {
		return reply{200, `{"id":"","choices":null,"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}`, nil}
	}
	r := noQuota(provider)
	return reply{200, r.body, nil}
}

// anthropicError wraps a message in the Anthropic error envelope.
func anthropicError(status int, typ, msg string) reply {
	return reply{status, fmt.Sprintf(`{"type":"error","error":{"type":%s,"message":%s}}`, q(typ), q(msg)), nil}
}

// jsonInner escapes s for use inside an already quoted JSON string.
func jsonInner(s string) string {
	b := q(s)
	return b[1 : len(b)-1]
}

func (r reply) write(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	_, _ = w.Write([]byte(r.body))
}
