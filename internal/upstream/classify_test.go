package upstream_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// Every error body the providers document (and a few seen in the wild), with the class the
// product must see.
func TestClassifyProviderBodies(t *testing.T) {
	const none failure.Class = ""
	cases := []struct {
		name     string
		provider string
		status   int
		body     string
		want     failure.Class
	}{
		// DeepSeek.
		{"ds model not exist", "deepseek", 400, `{"error":{"message":"Model Not Exist","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}`, failure.ModelNotFound},
		{"ds supported names", "deepseek", 400, `{"error":{"message":"The supported API model names are deepseek-flash, deepseek-v4-pro","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}`, failure.ModelNotFound},
		{"ds 401", "deepseek", 401, `{"error":{"message":"Authentication Fails, Your api key: ****xxxx is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}`, failure.InvalidKey},
		{"ds 401 header", "deepseek", 401, `{"error":{"message":"Authentication Fails (auth header format should be Bearer sk-...)","type":"authentication_error","param":null,"code":"invalid_request_error"}}`, failure.InvalidKey},
		{"ds 402", "deepseek", 402, `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`, failure.NoQuota},
		{"ds 422", "deepseek", 422, `{"error":{"message":"Invalid parameters","type":"invalid_request_error"}}`, failure.UpstreamIncompatible},
		{"ds 429", "deepseek", 429, `{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}`, failure.RateLimited},
		{"ds 500", "deepseek", 500, `{"error":{"message":"Server error","type":"server_error"}}`, failure.UpstreamUnreachable},
		{"ds 503", "deepseek", 503, `{"error":{"message":"Server overloaded","type":"server_error"}}`, failure.UpstreamUnreachable},
		{"ds 402 in 200", "deepseek", 200, `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`, failure.NoQuota},
		// Kimi.
		{"kimi 400", "kimi", 400, `{"error":{"type":"invalid_request_error","message":"Invalid request: token limit exceeded"}}`, failure.UpstreamIncompatible},
		{"kimi 400 filter", "kimi", 400, `{"error":{"type":"content_filter","message":"The request was rejected because it was considered high risk"}}`, failure.UpstreamIncompatible},
		{"kimi 401", "kimi", 401, `{"error":{"type":"invalid_authentication_error","message":"Invalid Authentication"}}`, failure.InvalidKey},
		{"kimi 401 incorrect", "kimi", 401, `{"error":{"type":"incorrect_api_key_error","message":"Incorrect API key provided"}}`, failure.InvalidKey},
		{"kimi 404", "kimi", 404, `{"error":{"type":"resource_not_found_error","message":"Not found the model kimi-k2-0711-preview or Permission denied"}}`, failure.ModelNotFound},
		{"kimi quota", "kimi", 429, `{"error":{"type":"exceeded_current_quota_error","message":"You exceeded your current quota, please check your plan and billing details"}}`, failure.NoQuota},
		{"kimi rate", "kimi", 429, `{"error":{"type":"rate_limit_reached_error","message":"Your account org-x request reached organization max RPM: 3"}}`, failure.RateLimited},
		{"kimi overload", "kimi", 429, `{"error":{"type":"engine_overloaded_error","message":"The engine is currently overloaded, please try again later"}}`, failure.RateLimited},
		{"kimi 403 balance", "kimi", 403, `{"error":{"type":"permission_denied_error","message":"Insufficient balance"}}`, failure.NoQuota},
		{"kimi 504 html", "kimi", 504, `<html><body><h1>504 Gateway Time-out</h1></body></html>`, failure.UpstreamUnreachable},
		{"kimi code 402", "kimi_coding", 402, `{"error":{"message":"membership required","type":"payment_required"}}`, failure.NoQuota},
		{"kimi code 403 limit", "kimi_coding", 403, `{"error":{"message":"You've reached your usage limit","type":"access_terminated_error"}}`, failure.NoQuota},
		{"kimi code 403 agents", "kimi_coding", 403, `{"error":{"message":"Kimi For Coding is only available for Coding Agents","type":"access_terminated_error"}}`, failure.UpstreamIncompatible},
		// MiniMax.
		{"mm 401", "minimax", 401, `{"type":"error","error":{"type":"authorized_error","message":"login fail: Please carry the API secret key in the 'Authorization' field of the request header (1004)","http_code":"401"},"request_id":"x"}`, failure.InvalidKey},
		{"mm 402", "minimax", 402, `{"type":"error","error":{"type":"insufficient_balance_error","message":"insufficient balance (1008)","http_code":"402"}}`, failure.NoQuota},
		{"mm anthropic 500", "minimax", 500, `{"type":"error","error":{"type":"api_error","message":"insufficient balance (1008)"}}`, failure.NoQuota},
		{"mm anthropic 401", "minimax", 401, `{"type":"error","error":{"type":"authentication_error","message":"login fail: invalid api key"}}`, failure.InvalidKey},
		{"mm 200 base_resp 1008", "minimax", 200, `{"id":"","choices":null,"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}`, failure.NoQuota},
		{"mm 200 base_resp 1002", "minimax", 200, `{"base_resp":{"status_code":1002,"status_msg":"rate limit"}}`, failure.RateLimited},
		{"mm 200 base_resp 2049", "minimax", 200, `{"base_resp":{"status_code":2049,"status_msg":"invalid api key"}}`, failure.InvalidKey},
		{"mm 200 base_resp 1033", "minimax", 200, `{"base_resp":{"status_code":1033,"status_msg":"system error"}}`, failure.UpstreamUnreachable},
		{"mm 200 base_resp 2056", "minimax", 200, `{"base_resp":{"status_code":2056,"status_msg":"usage limit exceeded"}}`, failure.NoQuota},
		{"mm 2013", "minimax", 400, `{"type":"error","error":{"type":"bad_request_error","message":"invalid params, invalid chat setting (2013)"}}`, failure.UpstreamIncompatible},
		{"mm 200 ok base_resp 0", "minimax", 200, `{"id":"1","choices":[{"message":{"content":"hi"}}],"base_resp":{"status_code":0,"status_msg":""}}`, none},
		{"mm wrong method", "minimax", 404, `404 page not found`, failure.UpstreamIncompatible},
		{"modelscope 1008 as 429", "modelscope", 429, `{"error":{"message":"insufficient balance (1008)","type":"rate_limit"}}`, failure.NoQuota},
		{"relay passing base_resp", "openai_compatible", 200, `{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}`, failure.NoQuota},
		// Zhipu / Z.ai.
		{"glm 1001", "glm", 401, `{"error":{"code":"1001","message":"Authentication parameter not received in Header"}}`, failure.InvalidKey},
		{"glm 1002", "glm", 401, `{"error":{"code":"1002","message":"Authorization Token非法"}}`, failure.InvalidKey},
		{"glm 1003", "glm", 401, `{"error":{"code":"1003","message":"Authorization Token expired"}}`, failure.InvalidKey},
		{"glm 1113", "glm", 429, `{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please recharge."}}`, failure.NoQuota},
		{"glm 1113 cn", "glm", 429, `{"error":{"code":"1113","message":"您的账户已欠费，请充值后重试。"}}`, failure.NoQuota},
		{"glm 1211", "glm", 400, `{"error":{"code":"1211","message":"Unknown Model, please check the model code."}}`, failure.ModelNotFound},
		{"glm 1210", "glm", 400, `{"error":{"code":"1210","message":"Invalid API parameter"}}`, failure.UpstreamIncompatible},
		{"glm 1214", "glm", 400, `{"error":{"code":"1214","message":"Invalid messages parameter"}}`, failure.UpstreamIncompatible},
		{"glm 1301", "glm", 400, `{"error":{"code":"1301","message":"unsafe content"}}`, failure.UpstreamIncompatible},
		{"glm 1302", "glm", 429, `{"error":{"code":"1302","message":"High concurrency"}}`, failure.RateLimited},
		{"glm 1303", "glm", 429, `{"error":{"code":"1303","message":"High frequency"}}`, failure.RateLimited},
		{"glm 1304", "glm", 429, `{"error":{"code":"1304","message":"Daily limit reached"}}`, failure.RateLimited},
		{"glm 1305", "glm", 429, `{"error":{"code":"1305","message":"Overloaded"}}`, failure.RateLimited},
		{"glm anthropic 1113", "glm", 429, `{"type":"error","error":{"type":"1113","message":"Insufficient balance or no resource package. Please recharge."}}`, failure.NoQuota},
		{"glm 1113 in 200", "glm", 200, `{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please recharge."}}`, failure.NoQuota},
		// Qwen / DashScope.
		{"qwen 401", "qwen", 401, `{"error":{"message":"Incorrect API key provided. ","type":"invalid_request_error","param":null,"code":"invalid_api_key"},"request_id":"x"}`, failure.InvalidKey},
		{"qwen 401 native", "qwen", 401, `{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"x"}`, failure.InvalidKey},
		{"qwen arrearage", "qwen", 400, `{"error":{"message":"Access denied, please make sure your account is in good standing.","type":"Arrearage","param":null,"code":"Arrearage"},"request_id":"x"}`, failure.NoQuota},
		{"qwen arrearage native 200", "qwen", 200, `{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing.","request_id":"x"}`, failure.NoQuota},
		{"qwen 403", "qwen", 403, `{"error":{"message":"Access denied.","type":"AccessDenied","code":"AccessDenied"}}`, failure.InvalidKey},
		{"qwen 404", "qwen", 404, `{"error":{"message":"The model qwen-x does not exist or you do not have access to it.","type":"invalid_request_error","code":"model_not_found"}}`, failure.ModelNotFound},
		{"qwen 404 native", "qwen", 404, `{"code":"ModelNotFound","message":"Model not found"}`, failure.ModelNotFound},
		{"qwen throttling", "qwen", 429, `{"error":{"message":"Requests rate limit exceeded","type":"Throttling.RateQuota","code":"Throttling.RateQuota"}}`, failure.RateLimited},
		{"qwen free quota", "qwen", 429, `{"error":{"message":"Free allocated quota exceeded.","type":"Throttling.AllocationQuota","code":"Throttling.AllocationQuota"}}`, failure.NoQuota},
		{"qwen insufficient_quota", "qwen", 429, `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`, failure.NoQuota},
		{"qwen invalid parameter", "qwen", 400, `{"error":{"message":"parameter.enable_thinking must be set to false for non-streaming calls","type":"invalid_request_error","code":"InvalidParameter"}}`, failure.UpstreamIncompatible},
		// StepFun.
		{"step 401", "stepfun", 401, `{"error":{"message":"Incorrect API key provided","type":"invalid_api_key"}}`, failure.InvalidKey},
		{"step 402", "stepfun", 402, `{"error":{"message":"insufficient balance","type":"insufficient_balance"}}`, failure.NoQuota},
		{"step 404 path", "stepfun", 404, `{"error":{"message":"Not Found","type":"not_found"}}`, failure.UpstreamIncompatible},
		{"step 429", "stepfun", 429, `{"error":{"message":"rate limit exceeded","type":"rate_limit_exceeded"}}`, failure.RateLimited},
		{"step 451", "stepfun", 451, `{"error":{"message":"content moderation","type":"content_filter"}}`, failure.UpstreamIncompatible},
		{"step 503", "stepfun", 503, `{"error":{"message":"overloaded","type":"server_error"}}`, failure.UpstreamUnreachable},
		// Ark.
		{"ark 401", "ark", 401, `{"error":{"code":"AuthenticationError","message":"The API key or AK/SK in the request is missing or invalid. Request ID: x","param":"","type":"Unauthorized"}}`, failure.InvalidKey},
		{"ark overdue", "ark", 403, `{"error":{"code":"AccountOverdueError","message":"The request failed because your account has an overdue balance.","param":"","type":"Forbidden"}}`, failure.NoQuota},
		{"ark access denied", "ark", 403, `{"error":{"code":"AccessDenied","message":"You do not have access to the resource.","param":"","type":"Forbidden"}}`, failure.InvalidKey},
		{"ark model", "ark", 404, `{"error":{"code":"InvalidEndpointOrModel.NotFound","message":"The model or endpoint x does not exist or you do not have access to it.","param":"","type":"NotFound"}}`, failure.ModelNotFound},
		{"ark not open", "ark", 404, `{"error":{"code":"ModelNotOpen","message":"Your account has not activated the model service.","type":"NotFound"}}`, failure.ModelNotFound},
		{"ark closed endpoint", "ark", 400, `{"error":{"code":"InvalidEndpoint.ClosedEndpoint","message":"The endpoint is closed.","type":"BadRequest"}}`, failure.ModelNotFound},
		{"ark risk", "ark", 400, `{"error":{"code":"InputTextRiskDetection","message":"The request failed because the input text may contain sensitive information.","type":"BadRequest"}}`, failure.UpstreamIncompatible},
		{"ark missing param", "ark", 400, `{"error":{"code":"MissingParameter","message":"The request failed because it is missing one or multiple required parameters.","type":"BadRequest"}}`, failure.UpstreamIncompatible},
		// Qianfan.
		{"qianfan iam", "qianfan", 401, `{"error":{"code":"invalid_iam_token","message":"IAM Certification failed","type":"invalid_request_error"}}`, failure.InvalidKey},
		{"qianfan plan key", "qianfan", 403, `{"error":{"code":"coding_plan_api_key_not_allowed","message":"coding plan api key is not allowed"}}`, failure.InvalidKey},
		{"qianfan v1", "qianfan", 200, `{"error_code":110,"error_msg":"Access token invalid or no longer valid"}`, failure.InvalidKey},
		// TokenHub.
		{"th 400", "tokenhub", 400, `{"error":{"type":"invalid_request_error","code":"400001","message":"invalid parameter 'model': model is required","source":"client"}}`, failure.UpstreamIncompatible},
		{"th 401", "tokenhub", 401, `{"error":{"type":"authentication_error","code":"401002","message":"invalid api key","source":"gateway"}}`, failure.InvalidKey},
		{"th 402", "tokenhub", 402, `{"error":{"type":"permission_error","code":"401007","message":"endpoint is inactive: FREE_QUOTA_EXHAUSTED","source":"gateway"}}`, failure.NoQuota},
		{"th 403 ip", "tokenhub", 403, `{"error":{"type":"permission_error","code":"403001","message":"ip not in allow list","source":"gateway"}}`, failure.RegionBlocked},
		{"th 429", "tokenhub", 429, `{"error":{"type":"rate_limit_error","code":"429001","message":"rate limit exceeded on dimension: rpm","source":"gateway"}}`, failure.RateLimited},
		{"th 451", "tokenhub", 451, `{"error":{"type":"content_filter_error","code":"451001","message":"content filtered"}}`, failure.UpstreamIncompatible},
		{"th 502", "tokenhub", 502, `{"error":{"type":"upstream_error","code":"502001","message":"upstream error","source":"upstream"}}`, failure.UpstreamUnreachable},
		// SiliconFlow.
		{"sf 401", "siliconflow", 401, `{"code":30014,"data":null,"message":"Token is invalid."}`, failure.InvalidKey},
		{"sf 401 text", "siliconflow", 401, `Invalid token`, failure.InvalidKey},
		{"sf 403", "siliconflow", 403, `{"code":30011,"data":null,"message":"The selected model requires paid balance. Your paid balance is insufficient. Please top up and try again."}`, failure.NoQuota},
		{"sf 400", "siliconflow", 400, `{"code":20012,"data":null,"message":"Model does not exist. Please check it carefully."}`, failure.ModelNotFound},
		{"sf 429", "siliconflow", 429, `{"message":"Request was rejected due to rate limiting. Details: TPM limit reached.","data":null}`, failure.RateLimited},
		{"sf 503", "siliconflow", 503, `{"code":50505,"message":"Model service overloaded. Please try again later.","data":null}`, failure.UpstreamUnreachable},
		// OpenRouter, MiMo and generic relays.
		{"or 401", "openrouter", 401, `{"error":{"message":"No auth credentials found","code":401}}`, failure.InvalidKey},
		{"or 402", "openrouter", 402, `{"error":{"message":"Insufficient credits","code":402}}`, failure.NoQuota},
		{"or 429", "openrouter", 429, `{"error":{"message":"Rate limit exceeded","code":429}}`, failure.RateLimited},
		{"mimo 402", "mimo", 402, `{"error":{"message":"Insufficient balance","type":"insufficient_balance"}}`, failure.NoQuota},
		{"relay 200 token quota", "openai_compatible", 200, `{"error":{"message":"该令牌额度已用尽","type":"new_api_error"}}`, failure.NoQuota},
		{"relay 200 odd error", "openai_compatible", 200, `{"error":{"message":"something broke","type":"new_api_error"}}`, failure.UpstreamIncompatible},
		{"relay 200 quota", "openai_compatible", 200, `{"error":{"message":"insufficient_user_quota: 用户余额不足","type":"new_api_error"}}`, failure.NoQuota},
		{"relay region", "openai_compatible", 403, `{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","type":"request_forbidden"}}`, failure.RegionBlocked},
		{"relay banned", "openai_compatible", 403, `{"error":{"message":"Your account has been deactivated","type":"invalid_request_error","code":"account_deactivated"}}`, failure.KeyBanned},
		{"relay banned 401", "openai_compatible", 401, `{"error":{"message":"This key has been banned","type":"invalid_request_error"}}`, failure.KeyBanned},
		{"relay 529", "openai_compatible", 529, `{"error":{"message":"overloaded"}}`, failure.UpstreamUnreachable},
		{"relay 408", "openai_compatible", 408, ``, failure.UpstreamUnreachable},
		{"relay 403 credentials", "openai_compatible", 403, `{"error":{"message":"invalid credentials"}}`, failure.InvalidKey},
		{"relay 400 credentials", "openai_compatible", 400, `{"error":{"message":"missing credentials for upstream"}}`, failure.UpstreamIncompatible},
		{"relay 403 bare", "openai_compatible", 403, ``, failure.InvalidKey},
		{"unknown provider 401", "no-such", 401, `{}`, failure.InvalidKey},
		// Successes.
		{"ok chat", "deepseek", 200, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}`, none},
		{"ok error null", "openai_compatible", 200, `{"error":null,"choices":[{"index":0}]}`, none},
		{"ok models", "siliconflow", 200, `{"object":"list","data":[{"id":"a"}]}`, none},
		{"ok non-json", "deepseek", 200, `data: {"choices":[]}`, none},
		{"ok empty", "deepseek", 204, ``, none},
	}
	for _, tc := range cases {
		got := upstream.Classify(tc.provider, tc.status, http.Header{}, []byte(tc.body))
		switch {
		case tc.want == none && got != nil:
			t.Errorf("%s: success classified as %s (%s)", tc.name, got.Class, got.Message)
		case tc.want != none && got == nil:
			t.Errorf("%s: error answer treated as success", tc.name)
		case got != nil && got.Class != tc.want:
			t.Errorf("%s: class %s (%s), want %s", tc.name, got.Class, got.Message, tc.want)
		}
		if got != nil && (got.Class == failure.RateLimited || got.Class == failure.UpstreamUnreachable) && !got.Retryable {
			t.Errorf("%s: %s must be retryable", tc.name, got.Class)
		}
		if got != nil && got.Message == "" {
			t.Errorf("%s: empty message", tc.name)
		}
	}
}

func TestClassifyRetryAfter(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "12")
	fe := upstream.Classify("kimi", 429, h, []byte(`{"error":{"type":"rate_limit_reached_error","message":"slow down"}}`))
	if fe == nil || fe.Class != failure.RateLimited || fe.RetryAfter != 12*time.Second || !fe.Retryable {
		t.Fatalf("got %+v", fe)
	}
	h.Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
	fe = upstream.Classify("glm", 429, h, []byte(`{"error":{"code":"1302","message":"High concurrency"}}`))
	if fe == nil || fe.RetryAfter < 80*time.Second || fe.RetryAfter > 91*time.Second {
		t.Fatalf("HTTP-date Retry-After: %+v", fe)
	}
	h.Set("Retry-After", "soon")
	if fe = upstream.Classify("glm", 429, h, nil); fe == nil || fe.RetryAfter != 0 {
		t.Fatalf("garbage Retry-After: %+v", fe)
	}
}

func TestClassifyMessageIsBounded(t *testing.T) {
	long := make([]byte, 10000)
	for i := range long {
		long[i] = 'a'
	}
	fe := upstream.Classify("deepseek", 500, nil, long)
	if fe == nil || len(fe.Message) > 400 {
		t.Fatalf("message not bounded: %d", len(fe.Message))
	}
}
