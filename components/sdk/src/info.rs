use crate::{API_VERSION, DailyCutoff, ProviderInfo, Setting};

/// Builds a [`ProviderInfo`] with the API version stamped in.
pub struct Info(ProviderInfo);

impl Info {
    /// A provider called `name` (lower-case; also its default account name).
    pub fn new(name: &str, version: &str) -> Info {
        Info(ProviderInfo {
            name: name.into(),
            version: version.into(),
            api_version: API_VERSION.into(),
            settings: Vec::new(),
            hosts: Vec::new(),
            daily_cutoff: None,
            refresh_ahead_secs: 3600,
        })
    }

    fn push(mut self, name: &str, description: &str, secret: bool, required: bool) -> Info {
        let description = description.into();
        self.0.settings.push(Setting {
            name: name.into(),
            secret,
            required,
            description,
            aliases: Vec::new(),
        });
        self
    }

    /// Another name for the setting added last, looked up after its own name (for the
    /// variables of scripts the provider replaces). A name in capitals (`ANGEL_PIN`) is a
    /// whole environment variable, as brokers' own SDK examples name them; any other is a key
    /// that gets the account's prefix (`interactive-api-key` -> `XTS_INTERACTIVE_API_KEY`).
    pub fn alias(mut self, alias: &str) -> Info {
        if let Some(last) = self.0.settings.last_mut() {
            last.aliases.push(alias.into());
        }
        self
    }

    /// A required setting that is not secret.
    pub fn setting(self, name: &str, description: &str) -> Info {
        self.push(name, description, false, true)
    }

    /// A required secret setting.
    pub fn secret(self, name: &str, description: &str) -> Info {
        self.push(name, description, true, true)
    }

    /// An optional setting that is not secret.
    pub fn optional(self, name: &str, description: &str) -> Info {
        self.push(name, description, false, false)
    }

    /// An optional secret setting.
    pub fn optional_secret(self, name: &str, description: &str) -> Info {
        self.push(name, description, true, false)
    }

    /// A host (`host` or `host:port`) the provider calls.
    pub fn host(mut self, host: &str) -> Info {
        self.0.hosts.push(host.into());
        self
    }

    /// The host of `url`, when it has one (for hosts that come from a setting).
    pub fn host_of(self, url: &str) -> Info {
        match crate::http::authority_of(url) {
            Some(host) => self.host(&host),
            None => self,
        }
    }

    /// Every token dies at `hour:minute` local time, `utc_offset_minutes` east of UTC.
    pub fn daily_cutoff(mut self, hour: u8, minute: u8, utc_offset_minutes: i16) -> Info {
        self.0.daily_cutoff = Some(DailyCutoff { hour, minute, utc_offset_minutes });
        self
    }

    /// Refresh this long before expiry (default one hour).
    pub fn refresh_ahead_secs(mut self, secs: u32) -> Info {
        self.0.refresh_ahead_secs = secs;
        self
    }

    /// The finished description.
    pub fn build(self) -> ProviderInfo {
        self.0
    }
}
