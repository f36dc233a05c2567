# What `cpack -G DEB` puts in vigil_<version>_<arch>.deb (SPEC §11).
include(GNUInstallDirs)
install(TARGETS vigil RUNTIME DESTINATION bin)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/vigil.json DESTINATION /etc/vigil)
file(GLOB vigil_example_rules ${CMAKE_CURRENT_LIST_DIR}/rules.d/*.json)
install(FILES ${vigil_example_rules} DESTINATION /etc/vigil/rules.d)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/vigil.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/mosquitto-vigil.conf
        DESTINATION share/doc/vigil/examples)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_CURRENT_LIST_DIR}/debian/copyright
        DESTINATION share/doc/vigil)
# Debian wants the changelog gzipped, without a timestamp in the gzip header.
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/debian)
file(ARCHIVE_CREATE OUTPUT ${CMAKE_BINARY_DIR}/debian/changelog.gz
     PATHS ${CMAKE_CURRENT_LIST_DIR}/debian/changelog FORMAT raw COMPRESSION GZip
     COMPRESSION_LEVEL 9 MTIME 0)
install(FILES ${CMAKE_BINARY_DIR}/debian/changelog.gz DESTINATION share/doc/vigil)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/README.md DESTINATION share/doc/vigil
        RENAME PACKAGING.md)

# The config and the example rules are conffiles: an upgrade keeps the operator's edits.
set(vigil_conffiles "/etc/vigil/vigil.json\n")
foreach(rule ${vigil_example_rules})
  get_filename_component(name ${rule} NAME)
  string(APPEND vigil_conffiles "/etc/vigil/rules.d/${name}\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/debian/conffiles "${vigil_conffiles}")
foreach(script postinst prerm postrm)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/debian/${script} ${CMAKE_BINARY_DIR}/debian/${script}
                 COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                 GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vigil)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "vigil maintainers <dev@vigil.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "IoT edge agent: windowed rules, anomaly detection, uplinks")
set(CPACK_PACKAGE_DESCRIPTION
    "vigil subscribes to the gateway's MQTT broker, evaluates declarative windowed
rules and anomaly detectors over the readings, keeps its state in SQLite, and
forwards alerts and aggregates to HTTP, Alertmanager, InfluxDB or a cloud MQTT
broker, at least once.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/debian/conffiles ${CMAKE_BINARY_DIR}/debian/postinst
    ${CMAKE_BINARY_DIR}/debian/prerm ${CMAKE_BINARY_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
