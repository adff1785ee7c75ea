use super::*;
use jsonwebtoken::{EncodingKey, Header, jwk::Jwk};
use serde_json::json;

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const AUD: &str = "api://defender-sentinel-sync";
const APP: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

struct Signer {
    kid: String,
    enc: EncodingKey,
    public_pem: Vec<u8>,
    keys: KeySet,
}

fn signer() -> Signer {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let enc = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("kid-1".into());
    let mut keys = KeySet::new();
    keys.insert("kid-1".into(), DecodingKey::from_jwk(&jwk).unwrap());
    Signer {
        kid: "kid-1".into(),
        enc,
        public_pem: kp.public_key_pem().into_bytes(),
        keys,
    }
}

fn rules() -> TokenRules {
    TokenRules {
        audience: AUD.into(),
        issuers: vec![format!("https://sts.windows.net/{TENANT}/")],
        allowed_app_ids: vec![],
    }
}

const NOW: i64 = 1_800_000_000;

fn claims() -> serde_json::Value {
    json!({
        "aud": AUD, "iss": format!("https://sts.windows.net/{TENANT}/"), "iat": NOW - 60,
        "nbf": NOW - 60, "exp": NOW + 3600, "tid": TENANT, "appid": APP, "oid": "o",
    })
}

fn sign(s: &Signer, claims: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(s.kid.clone());
    jsonwebtoken::encode(&h, claims, &s.enc).unwrap()
}

fn with(f: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut c = claims();
    f(&mut c);
    c
}

#[test]
fn a_valid_token_passes_and_names_its_app() {
    let s = signer();
    let caller = validate_token(&sign(&s, &claims()), &s.keys, &rules(), NOW).unwrap();
    assert_eq!(caller.app_id.as_deref(), Some(APP));
    // v2 tokens name the app in `azp`; an audience list and a trailing slash are fine.
    let v2 = with(|c| {
        c.as_object_mut().unwrap().remove("appid");
        c["azp"] = json!(APP);
        c["aud"] = json!(["other", format!("{AUD}/")]);
    });
    let caller = validate_token(&sign(&s, &v2), &s.keys, &rules(), NOW).unwrap();
    assert_eq!(caller.app_id.as_deref(), Some(APP));
}

#[test]
fn each_token_defect_is_refused_with_its_reason() {
    let s = signer();
    let v = |c: serde_json::Value| validate_token(&sign(&s, &c), &s.keys, &rules(), NOW);
    assert_eq!(
        v(with(|c| c["exp"] = json!(NOW - 61))),
        Err(TokenError::Expired)
    );
    assert!(
        v(with(|c| c["exp"] = json!(NOW - 30))).is_ok(),
        "within the skew"
    );
    assert_eq!(
        v(with(|c| c["nbf"] = json!(NOW + 61))),
        Err(TokenError::NotYetValid)
    );
    assert_eq!(
        v(with(|c| {
            c.as_object_mut().unwrap().remove("exp");
        })),
        Err(TokenError::Expired),
        "a token without exp never expires: refused"
    );
    assert_eq!(
        v(with(|c| c["aud"] = json!("https://vault.azure.net"))),
        Err(TokenError::Audience)
    );
    assert_eq!(
        v(with(|c| c["iss"] = json!(
            "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"
        ))),
        Err(TokenError::Issuer)
    );

    // A key the authority does not publish.
    let other = signer();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("kid-unknown".into());
    let t = jsonwebtoken::encode(&h, &claims(), &other.enc).unwrap();
    assert_eq!(
        validate_token(&t, &s.keys, &rules(), NOW),
        Err(TokenError::UnknownKey("kid-unknown".into()))
    );
    // The right kid, the wrong key: the signature fails.
    let t = sign(
        &Signer {
            keys: KeySet::new(),
            ..other
        },
        &claims(),
    );
    assert_eq!(
        validate_token(&t, &s.keys, &rules(), NOW),
        Err(TokenError::Signature)
    );
    // A tampered payload.
    let good = sign(&s, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&with(|c| c["appid"] = json!("evil"))).unwrap());
    let t = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(
        validate_token(&t, &s.keys, &rules(), NOW),
        Err(TokenError::Signature)
    );
}

#[test]
fn alg_none_and_hmac_signed_with_the_public_key_are_refused_before_any_key_is_used() {
    let s = signer();
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b.encode(br#"{"alg":"none","typ":"JWT","kid":"kid-1"}"#),
        b.encode(serde_json::to_vec(&claims()).unwrap())
    );
    assert_eq!(
        validate_token(&unsigned, &s.keys, &rules(), NOW),
        Err(TokenError::Algorithm("none".into()))
    );
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let mut h = Header::new(alg);
        h.kid = Some(s.kid.clone());
        let t =
            jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&s.public_pem)).unwrap();
        assert_eq!(
            validate_token(&t, &s.keys, &rules(), NOW),
            Err(TokenError::Algorithm(format!("{alg:?}"))),
        );
    }
    let mut h = Header::new(Algorithm::RS256);
    h.kid = None;
    let t = jsonwebtoken::encode(&h, &claims(), &s.enc).unwrap();
    assert_eq!(
        validate_token(&t, &s.keys, &rules(), NOW),
        Err(TokenError::NoKeyId)
    );
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.x.y",
        &"a".repeat(MAX_TOKEN_BYTES + 1),
    ] {
        assert!(
            matches!(
                validate_token(junk, &s.keys, &rules(), NOW),
                Err(TokenError::Malformed(_))
            ),
            "{junk:.20}"
        );
    }
}

#[test]
fn the_allow_list_admits_only_its_apps() {
    let s = signer();
    let mut r = rules();
    r.allowed_app_ids = vec![APP.to_uppercase()];
    assert!(validate_token(&sign(&s, &claims()), &s.keys, &r, NOW).is_ok());
    r.allowed_app_ids = vec!["99999999-9999-9999-9999-999999999999".into()];
    assert_eq!(
        validate_token(&sign(&s, &claims()), &s.keys, &r, NOW),
        Err(TokenError::AppNotAllowed(APP.into()))
    );
}

#[test]
fn the_secret_must_be_present_non_empty_and_equal() {
    let expected = ExpectedSecret::new("0123456789abcdef-secret");
    assert_eq!(
        check_secret(&expected, Some("0123456789abcdef-secret")),
        Ok(())
    );
    assert_eq!(check_secret(&expected, None), Err(AuthError::Missing));
    assert_eq!(
        check_secret(&expected, Some("")),
        Err(AuthError::EmptySecret)
    );
    for wrong in ["0123456789abcdef-secreT", "0123456789abcdef-secret ", "x"] {
        assert_eq!(
            check_secret(&expected, Some(wrong)),
            Err(AuthError::WrongSecret)
        );
    }
    assert!(!format!("{expected:?}").contains("secret"));
}

#[test]
fn bearer_headers_are_parsed_strictly() {
    assert_eq!(bearer("Bearer abc"), Ok("abc"));
    assert_eq!(bearer("bearer  abc "), Ok("abc"));
    assert_eq!(bearer("Basic abc"), Err(AuthError::NotBearer));
    assert_eq!(bearer("Bearer"), Err(AuthError::NotBearer));
    assert_eq!(bearer("Bearer "), Err(AuthError::NotBearer));
}
