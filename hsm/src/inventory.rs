//! Every object on the token with its security attributes, for the
//! security team (`provii-appliance hsm inventory`).

use cryptoki::object::{Attribute, AttributeType};
use serde::Serialize;

use crate::error::{P11ResultExt, Result};
use crate::hsm::Hsm;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectInfo {
    pub class: String,
    pub label: String,
    /// `CKA_ID`, lowercase hex.
    pub id: String,
    pub key_type: Option<String>,
    pub token: Option<bool>,
    pub private: Option<bool>,
    pub sensitive: Option<bool>,
    pub always_sensitive: Option<bool>,
    pub extractable: Option<bool>,
    pub never_extractable: Option<bool>,
    pub local: Option<bool>,
}

const QUERIED: [AttributeType; 11] = [
    AttributeType::Class,
    AttributeType::Label,
    AttributeType::Id,
    AttributeType::KeyType,
    AttributeType::Token,
    AttributeType::Private,
    AttributeType::Sensitive,
    AttributeType::AlwaysSensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::Local,
];

impl Hsm {
    pub fn inventory(&self) -> Result<Vec<ObjectInfo>> {
        self.call(|s, _| {
            let handles = s.find_objects(&[]).op("C_FindObjects")?;
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                let mut info = ObjectInfo {
                    class: String::new(),
                    label: String::new(),
                    id: String::new(),
                    key_type: None,
                    token: None,
                    private: None,
                    sensitive: None,
                    always_sensitive: None,
                    extractable: None,
                    never_extractable: None,
                    local: None,
                };
                // Attributes an object does not have are simply absent.
                for a in s.get_attributes(h, &QUERIED).op("C_GetAttributeValue")? {
                    match a {
                        Attribute::Class(c) => info.class = c.to_string(),
                        Attribute::Label(l) => {
                            info.label = String::from_utf8_lossy(&l).into_owned()
                        }
                        Attribute::Id(id) => info.id = provii_circuits::encoding::hex_encode(&id),
                        Attribute::KeyType(k) => info.key_type = Some(k.to_string()),
                        Attribute::Token(b) => info.token = Some(b),
                        Attribute::Private(b) => info.private = Some(b),
                        Attribute::Sensitive(b) => info.sensitive = Some(b),
                        Attribute::AlwaysSensitive(b) => info.always_sensitive = Some(b),
                        Attribute::Extractable(b) => info.extractable = Some(b),
                        Attribute::NeverExtractable(b) => info.never_extractable = Some(b),
                        Attribute::Local(b) => info.local = Some(b),
                        _ => {}
                    }
                }
                out.push(info);
            }
            out.sort_by(|a, b| a.label.cmp(&b.label).then(a.class.cmp(&b.class)));
            Ok(out)
        })
    }
}
