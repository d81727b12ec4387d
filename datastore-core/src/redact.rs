//! Showing connection URLs without their secrets.

/// Query options whose values are secrets.
const SECRET_OPTIONS: &[&str] = &["password", "sslpassword", "pass", "pwd", "token", "secret"];

/// The URL with any password replaced by `***`, for messages and logs: the
/// one in the user info (`postgres://u:PASSWORD@h/db`) and any in the query
/// (`?password=...`, `?sslpassword=...`, `?token=...`).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = redact_user_info(base);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if SECRET_OPTIONS.contains(&name.to_ascii_lowercase().as_str()) => {
                    format!("{name}=***")
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

fn redact_user_info(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn every_password_in_a_url_is_hidden() {
        for (url, shown) in [
            (
                "postgres://app:hunter2@db:5432/app",
                "postgres://app:***@db:5432/app",
            ),
            (
                "postgres://app@db/app?password=hunter2&sslmode=require",
                "postgres://app@db/app?password=***&sslmode=require",
            ),
            (
                "postgres://a:b@db/app?sslpassword=hunter2",
                "postgres://a:***@db/app?sslpassword=***",
            ),
            ("sqlite://./app.db", "sqlite://./app.db"),
            (
                "postgres://u@h/d?PASSWORD=x",
                "postgres://u@h/d?PASSWORD=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
            assert!(!redact_url(url).contains("hunter2"));
        }
    }
}
