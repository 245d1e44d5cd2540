//! The macro that turns the endpoint table of [`crate::api`] into the trait, the server's
//! dispatch, the client's methods, the store's implementation and `/site-map`.
//!
//! One table line reads
//!
//! ```text
//! /// Docstring summary (also /site-map's description).
//! "task/create" => fn create_tasks(tasks: &[NewTask], policy: Policy = Policy::Recurring) -> Vec<Task>;
//! ```
//!
//! A parameter may name its [`ArgCodec`](crate::rpc::args::ArgCodec) in brackets after its type
//! (`search: &TaskSearch [SearchFilters]`), and so may the result
//! ([`ResultCodec`](crate::rpc::args::ResultCodec)); the default is
//! [`Plain`](crate::rpc::args::Plain). `ignoring("result")` after the path accepts keyword
//! arguments the original takes and does not use.

/// The first type given, or the default: `codec!(; Plain)` is `Plain`.
macro_rules! codec {
    (; $default:ty) => {
        $default
    };
    ($given:ty ; $default:ty) => {
        $given
    };
}
pub(crate) use codec;

macro_rules! endpoints {
    ($(
        $(#[doc = $doc:literal])*
        $path:literal $(ignoring($($ignored:literal),*))? => fn $name:ident(
            $($arg:ident : $ty:ty $([$acodec:ty])? $(= $default:expr)?),* $(,)?
        ) -> $ret:ty $([$rcodec:ty])?;
    )+) => {
        /// The scheduler's API: the methods of the original's `SchedulerInterface` that this
        /// scheduler serves, with their RPC paths in [`ENDPOINTS`]. [`Store`] implements it on
        /// Redis, [`RpcClient`] through an RPC server, and [`crate::rpc::server`] serves any
        /// implementation.
        #[async_trait::async_trait]
        pub trait SchedulerApi: Send + Sync {
            /// Where the state is, for messages: the Redis URL or the RPC server's.
            fn location(&self) -> String;
            $(
                $(#[doc = $doc])*
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret>;
            )+
        }

        /// Every endpoint: its RPC path, its method and its docstring.
        pub const ENDPOINTS: &[Endpoint] = &[$(
            Endpoint {
                path: $path,
                method: stringify!($name),
                params: &[$(stringify!($arg)),*],
                doc: &[$($doc),*],
            },
        )+];

        /// Runs the call to `path` (no leading slash) with the keyword arguments `body` on `api`.
        pub async fn call(api: &dyn SchedulerApi, path: &str, body: Wire) -> R<Wire> {
            #[allow(unused_mut)]
            let mut a = Args::new(path, body)?;
            match path {
                $(
                    $path => {
                        $(
                            let $arg: <$ty as Param<'_>>::Owned =
                                <codec!($($acodec)?; Plain) as ArgCodec<$ty, _>>::read(
                                    &mut a,
                                    stringify!($arg),
                                    None $(.or(Some($default)))?,
                                )?;
                        )*
                        $($(a.ignore($ignored);)*)?
                        a.finish()?;
                        let out: $ret = api.$name($(<$ty as Param<'_>>::lend(&$arg)),*).await?;
                        Ok(<codec!($($rcodec)?; Plain) as ResultCodec<$ret>>::encode(&out))
                    }
                )+
                p => Err(not_served(p)),
            }
        }

        #[async_trait::async_trait]
        impl SchedulerApi for Store {
            fn location(&self) -> String {
                crate::error::redacted(&self.config().url)
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    Store::$name(self, $($arg),*).await
                }
            )+
        }

        #[async_trait::async_trait]
        impl SchedulerApi for RpcClient {
            fn location(&self) -> String {
                self.url().to_string()
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    #[allow(unused_mut)]
                    let mut args: Vec<(Wire, Wire)> = Vec::new();
                    $(
                        <codec!($($acodec)?; Plain) as ArgCodec<$ty, <$ty as Param<'_>>::Owned>>::write(
                            &$arg,
                            stringify!($arg),
                            &mut args,
                        );
                    )*
                    let reply = self.call($path, Wire::Map(args)).await?;
                    <codec!($($rcodec)?; Plain) as ResultCodec<$ret>>::decode(&reply)
                        .map_err(CallError::into_reply_error)
                }
            )+
        }

        #[async_trait::async_trait]
        impl SchedulerApi for Recorder {
            fn location(&self) -> String {
                self.inner.location()
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    self.record(stringify!($name));
                    self.inner.$name($($arg),*).await
                }
            )+
        }
    };
}
pub(crate) use endpoints;
