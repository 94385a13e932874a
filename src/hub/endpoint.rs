//! Which JupyterHub endpoint a request went to, and who is told of every
//! answer: the hub client reports each attempt to an [`Observer`] (the
//! culler's metrics) and knows nothing else of what is done with it.

/// The JupyterHub API endpoints the culler calls, as the path templates
/// that label requests in metrics: a label holding the real path would
/// make one series per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `GET /`: the hub's version.
    Root,
    /// `GET /users`: a page of users.
    Users,
    /// `GET /user`: a token's owner and scopes.
    TokenOwner,
    /// `DELETE /users/{name}/server`: stop a user's default server.
    UserServer,
    /// `DELETE /users/{name}/servers/{server}`: stop (or remove) a named server.
    NamedServer,
    /// `DELETE /users/{name}`: delete a user.
    User,
}

impl Endpoint {
    /// Every endpoint, in the order they are listed here.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Root,
        Endpoint::Users,
        Endpoint::TokenOwner,
        Endpoint::UserServer,
        Endpoint::NamedServer,
        Endpoint::User,
    ];

    /// The path template, relative to the API's base URL.
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::Root => "/",
            Endpoint::Users => "/users",
            Endpoint::TokenOwner => "/user",
            Endpoint::UserServer => "/users/{name}/server",
            Endpoint::NamedServer => "/users/{name}/servers/{server}",
            Endpoint::User => "/users/{name}",
        }
    }
}

/// Told of every attempt the hub client makes: the method, the endpoint,
/// and the answer's status (`None`: no answer came).
pub trait Observer: Send + Sync {
    /// One attempt was answered (or not).
    fn answered(&self, method: &'static str, endpoint: Endpoint, status: Option<u16>);
}

/// Nobody listens: a client whose requests are not counted.
pub struct Unobserved;

impl Observer for Unobserved {
    fn answered(&self, _: &'static str, _: Endpoint, _: Option<u16>) {}
}
