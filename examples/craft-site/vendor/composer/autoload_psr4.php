<?php

// autoload_psr4.php: namespace prefix => source directories.

$vendorDir = dirname(__DIR__);
$baseDir = dirname($vendorDir);

return array(
    'Acme\\Greeter\\' => array($vendorDir . '/acme/greeter/src'),
);
